"""The core floor: problems, initializations, linear algebra, vector fields, the compiled continuous and discrete
runs, the result type, curvature, exact solutions, data readers. It imports nothing above it."""

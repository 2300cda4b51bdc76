"""The studies floor: comparison of GD with the flows, the main job's overview, solver accuracy, sweeps, the
catapult. Studies import the core, never the paper floor."""

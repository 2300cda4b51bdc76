"""The paper floor: one module per reproduced experiment of Arora, Cohen & Hazan (2018), their shared rules
(:mod:`linflow.paper.common`) and the registry (:mod:`linflow.paper.reproduce`). It imports the core, never the
studies."""

"""The incremental streaming engine shared by the SimulEval agents and the server."""

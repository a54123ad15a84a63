"""The Beam expansion (`[beam]` extra): transforms, the run, runner checks."""

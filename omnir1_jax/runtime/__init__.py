"""Run-time plumbing shared by the entry points: metrics writers, checkpoints, meshes."""

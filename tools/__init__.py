"""Course tooling: commands for contributors and instructors, not part of what a learner reads.

Run them from the repository's root as ``python -m tools.<name>``.
"""

"""One plausible wrong answer per exercise, for ``test_exercises.py``: each must make its self-check fail.

Keyed by notebook stem, then exercise number (1, 2, ... in the order the exercise cells appear in the notebook).
A value is the code that replaces the exercise's solution block (a list of codes for a cell with several blocks).
"""

WRONG_ANSWERS: dict[str, dict[int, str | list[str]]] = {}

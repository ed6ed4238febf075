"""Where the tests find the repository and their data (tests/ is not a package: every test
module imports this by name, wherever it sits under tests/)."""

from pathlib import Path

#: the tests' folder, the repository, and the data the tests read (nothing outside it)
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DATA = TESTS / "data"

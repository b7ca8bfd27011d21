"""The README keeps its promises: exactly two commands, CI runs the test one, every notebook is on the map."""

import pathlib
import re

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def command_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```", README, re.S)
    assert match, f"README.md has no ```bash block after <!-- {marker} -->"
    return match.group(1).strip()


def test_exactly_two_commands():
    assert len(re.findall(r"```bash\n", README)) == 2
    assert command_after("open-command") == "pip install -r requirements.txt && jupyter lab notebooks/"
    assert command_after("test-command") == (
        "pip install -r requirements.txt -r requirements-test.txt && pytest && python -m tools.robustness --seeds 1 2")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and "README.md" in ci


def test_every_notebook_is_on_the_map():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"(notebooks/{path.name})" in README, f"README's notebook map has no row for {path.name}"


def test_requirements_pin_cpu_torch_and_install_the_package():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith("#")]
    assert "torch==2.13.0" in packages
    assert "-e ." in packages
    assert "./jupyter-extension" in packages  # a regular install: only that enables the server extension
    assert not any(line.startswith("torchvision") for line in packages)
    local = {"-e .", "./jupyter-extension"}  # this repository's own two packages
    unpinned = [p for p in packages if p not in local and "==" not in p]
    assert not unpinned, f"unpinned requirements: {unpinned}"


def test_images_the_readme_shows_exist():
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / target).is_file(), target

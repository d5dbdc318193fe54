"""The mlc compiler: load, validate, build the IR, run passes, hand the IR to targets."""

__version__ = "0.1.0"
"""The distribution's version (kept equal to `pyproject.toml` by a test): reading it from
package metadata scans every installed distribution, ~40 ms on each run."""

"""medbridge: reproduce 'When Does RL Help Medical VLMs?' (Jeddi et al., 2026) as an auditable Snakemake DAG."""

__version__ = "0.1.0"


class MedbridgeError(Exception):
    """A user-facing error: the message names the problem and the fix; the CLI exits non-zero with it."""

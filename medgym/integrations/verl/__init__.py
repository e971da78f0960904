"""verl glue: parquet data, BaseTool adapters, the medgym agent loop and group rewards.

verl is an optional dependency (``pip install "medgym[verl]"``). Import the submodules
directly; this package imports nothing from verl itself::

    from medgym.integrations.verl.prepare import prepare_dataset
    from medgym.integrations.verl.tools import MedgymTool
    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
"""

from __future__ import annotations

#: The name the medgym agent loop is registered under (the parquet's ``agent_name`` column).
AGENT_NAME = "medgym_agent"

__all__ = ["AGENT_NAME"]

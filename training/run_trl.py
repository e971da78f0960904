"""GRPO with TRL on medgym: ``python training/run_trl.py [--config cfg.yaml] [--key value ...]``.

With no arguments it runs the embedded default (warm-started tiny Qwen2.5-VL, the bundled
``synthetic`` set, label-free reward, CPU, a few steps). Every ``MedGymArguments`` field and
every trl ``GRPOConfig`` field can be set from YAML (``--config``) or the command line, e.g.::

    python training/run_trl.py --max_steps 8 --reward medvr
    python training/run_trl.py --config training/configs/trl_qwen2_5_vl_3b.yaml
"""

from __future__ import annotations

import logging
import os

from medgym.integrations.trl.checkpoints import save_trained
from medgym.integrations.trl.metrics import tensorboard_available
from medgym.integrations.trl.train import CPU_DEFAULTS, MedGymArguments, build_trainer

logger = logging.getLogger("run_trl")


def main() -> None:
    """Parse the configs, build the trainer, train, save."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, TrlParser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = TrlParser((MedGymArguments, GRPOConfig))
    defaults = dict(CPU_DEFAULTS, output_dir="runs/trl")
    if tensorboard_available():
        defaults["report_to"] = "tensorboard"
    else:
        logger.info("tensorboard is not installed: metrics go to the JSONL file only")
    parser.set_defaults(**defaults)
    margs, gargs = parser.parse_args_and_config()
    trainer, reward = build_trainer(margs, gargs)
    trainer.train()
    if gargs.save_strategy != "no":
        save_trained(trainer, gargs.output_dir)  # with its profile and tiny task recorded
    for rec in reward.history:
        logger.info(
            "step %d reward %.3f tool-call rate %.2f",
            rec["step"],
            rec["reward"],
            rec["tool_call_rate"],
        )


if __name__ == "__main__":
    main()

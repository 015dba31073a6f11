"""Model lifecycle: backfill, dual write, canary and shadow rollouts gated on golden sets and
serving figures, atomic promotion, automatic rollback.

    from embedops.lifecycle import Rollouts
    rollouts = Rollouts(api)
    rollouts.start("docs", "w2v@2", mode="canary", share=0.1)
    rollouts.run_backfill("docs")           # resumable; builds the candidate's index
    rollouts.status("docs")                 # figures, gates (a broken canary is rolled back)
    rollouts.promote("docs")                # one switch, once the gates hold
    rollouts.rollback("docs")
"""

from embedops.lifecycle.gates import GateConfig, GateReport, evaluate_gates
from embedops.lifecycle.manager import Rollouts
from embedops.lifecycle.rollout import GateFailed, RolloutConflict, RolloutNotFound, RolloutState

__all__ = ["GateConfig", "GateFailed", "GateReport", "RolloutConflict", "RolloutNotFound",
           "RolloutState", "Rollouts", "evaluate_gates"]

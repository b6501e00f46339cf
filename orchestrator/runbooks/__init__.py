"""Emergency runbooks: YAML files in `runbooks/`, validated at start-up, chosen per run, planned as a dry
run and executed step by step with a checkpoint and an event before and after each step.

- model: the typed runbook and its fixed step vocabulary (pure)
- loader: YAML -> Runbook, with the file and line of every problem
- select: which runbook applies to a run (engine, stage reached, strategy), pure
- planner: runbook + run -> the exact steps and statements, the dry run (pure)
- executor: runs a planned runbook through the ports, resumable after a crash
- emergency: stop every migration on a target with one call
"""

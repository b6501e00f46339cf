"""The engine: planners, runner, backfill, rollback and preflight. Talks to the world through ports only."""

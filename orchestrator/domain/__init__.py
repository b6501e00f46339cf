"""Pure models and decisions: no I/O, no asyncio. Everything here is safe to call from a planner or a test."""

"""Reinforcement learning on the reactive market: environments whose learners are rows of
the agent table while the whole population trades around them (``qtg.rl.env``)."""

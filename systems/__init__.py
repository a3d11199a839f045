"""BEHAVIOUR: pure functions over components, what happens each tick."""

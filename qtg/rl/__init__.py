"""Reinforcement learning on the reactive market: environments whose learners are rows of
the agent table while the whole population trades around them (``qtg.rl.env``)."""


def allowed_cores() -> list[int]:
    """The cores this process may run on, in order ([] where the OS cannot say)."""
    import os

    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def one_cpu_thread() -> bool:
    """Run XLA's CPU work on one thread: pin this process to one core before JAX starts
    its CPU backend (which sizes its thread pool by the cores it may use). XLA's CPU
    runtime can deadlock, every thread idle, on PPO's program (loops of vmapped market
    ticks) with a pool of several threads; a pool of one cannot. Done by ``qtg.train`` and
    ``qtg.bench``'s PPO benchmark when no GPU plugin is installed (on a GPU the program runs
    there). True when it pinned."""
    import importlib.util
    import os

    if os.environ.get("JAX_PLATFORMS", "").lower() not in ("", "cpu"):
        return False
    if os.environ.get("JAX_PLATFORMS", "") == "" and any(
            importlib.util.find_spec(m) is not None for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin")):
        return False
    if not hasattr(os, "sched_setaffinity"):
        return False
    cpus = allowed_cores()
    if len(cpus) > 1:  # a core by process id: trainings started side by side spread out
        os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})
    return True

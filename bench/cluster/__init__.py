"""Running the benchmark on Slurm: the `slurm` launcher (slurm.py: one job array per sweep, one group of
cases per array task), its options (options.py), job states without accounting (watcher.py) and a
throwaway single-node cluster on this machine (local-slurm.sh)."""

# How jobs are run: utils/run.sh runs them on this machine; utils/slurm.sh submits
# them to Slurm (same interface: JOB=1:N log/x.JOB.log command ...).
cmd_backend=${cmd_backend:-local}
case "${cmd_backend}" in
    local)
        export train_cmd="utils/run.sh --max-jobs-run ${max_jobs_run:-2}"
        # Training jobs run one at a time, each with train_threads CPU threads; by default the
        # cores that are free now: all of them (nproc --all: nproc alone obeys OMP_NUM_THREADS)
        # less the 1-minute load average, at least 1. CPU training is bit-reproducible for a given
        # thread count only (torch's convolution gradients sum in a thread-dependent order):
        # distill.sh logs the count and writes it into each stage's reproduce.sh.
        if [ -z "${train_threads:-}" ]; then
            train_threads_why="the free cores: $(nproc --all) cores, load $(cut -d' ' -f1 /proc/loadavg)"
            train_threads=$(awk -v c="$(nproc --all)" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
                'BEGIN { n = int(c - l + 0.5); print (n < 1 ? 1 : n) }')
        fi
        export train_threads
        export cuda_cmd="utils/run.sh --max-jobs-run 1 --num-threads ${train_threads}"
        export decode_cmd="utils/run.sh --max-jobs-run ${max_jobs_run:-2}" ;;
    slurm)
        export train_cmd="utils/slurm.sh --mem 4G"
        export train_threads=${train_threads:-8}
        export cuda_cmd="utils/slurm.sh --mem 16G --gpu ${ngpu:-0} --num-threads ${train_threads}"
        export decode_cmd="utils/slurm.sh --mem 4G" ;;
    *) echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local or slurm)" >&2; return 1 ;;
esac

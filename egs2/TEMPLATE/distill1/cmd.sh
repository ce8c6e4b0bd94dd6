# How jobs are run: utils/run.sh runs them on this machine; utils/slurm.sh submits
# them to Slurm (same interface: JOB=1:N log/x.JOB.log command ...).
cmd_backend=${cmd_backend:-local}
case "${cmd_backend}" in
    local)
        export train_cmd="utils/run.sh --max-jobs-run ${max_jobs_run:-2}"
        # training jobs run one at a time with every core (nproc alone would obey OMP_NUM_THREADS=1).
        # CPU training is bit-reproducible for a given thread count only (torch's convolution
        # gradients sum in a thread-dependent order): set train_threads to rerun elsewhere exactly;
        # each job's log ends with the count it used ("# Accounting: ... threads=N").
        export cuda_cmd="utils/run.sh --max-jobs-run 1 --num-threads ${train_threads:-$(nproc --all)}"
        export decode_cmd="utils/run.sh --max-jobs-run ${max_jobs_run:-2}" ;;
    slurm)
        export train_cmd="utils/slurm.sh --mem 4G"
        export cuda_cmd="utils/slurm.sh --mem 16G --gpu ${ngpu:-0} --num-threads ${train_threads:-8}"
        export decode_cmd="utils/slurm.sh --mem 4G" ;;
    *) echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local or slurm)" >&2; return 1 ;;
esac

"""Resumable, sharded bound-validation sweeps described by a YAML file.

    python -m attrbound_lite.sweep CONFIG --out DIR            # or: attrbound sweep CONFIG --out DIR
    torchrun --nproc_per_node=N -m attrbound_lite.sweep CONFIG --out DIR
    attrbound report DIR

The work is cut into shards: a shard is a block of ``shard_size`` consecutive samples of one model, with
every (attribution, norm, eps, attack, restart) of those samples inside (``experiments.validate_bounds``).
Shard k of model m draws its randomness from ``derive_seed(seed, m, k)``, so its rows do not depend on
which process runs it, nor when. Each finished shard is written atomically to
``DIR/shards/<model>/shard-<k>.parquet``; a shard file exists completely or not at all. Rerunning the same
command after any interruption (SIGKILL included) skips the finished shards and yields the same final
table, ``DIR/results.parquet`` (rows sorted by ``experiments.KEY_COLUMNS``; timing columns aside, equal to
an uninterrupted run's). ``DIR/manifest.json`` records the config's hash, the shards and their status; a
different config in an existing ``DIR`` is refused.

Inside a batch, each attack runs every (radius, restart, sample) instance of one (attribution, norm) as
the rows of one attack batch, each row carrying its own radius (``experiments.validate_bounds``), cut into
chunks of ``chunk_size`` rows; on CUDA the default is the largest chunk that fits in memory, found once by
halving after an out-of-memory error. A radius's rows start where a separate attack at that radius would.

Under ``torchrun`` (``WORLD_SIZE > 1``: ``torch.distributed`` with gloo on CPU, nccl on CUDA) rank 0
checks the folder, trains the recipe models and writes the manifest; the ranks then take the pending
shards round-robin, each writing its own shard files, and after a barrier rank 0 merges them. Every rank
must see ``DIR`` (a shared file system across nodes).

Config (YAML; unknown keys and bad values are refused with their key path, e.g.
``attacks[1].steps: must be a positive integer, got 0``). An example; where it differs from the defaults,
these are ``shard_size: 64``, ``restarts: 1``, ``norms: [l2, linf]``, ``attributions: [saliency]``::

    seed: 0                        # base of every derived seed
    shard_size: 16                 # samples per shard
    batch_size: null               # samples per batch inside a shard (null: the whole shard)
    device: auto                   # auto (cuda if available, else cpu), cpu, cuda, cuda:N
    chunk_size: null               # rows per attack batch (null: CUDA as many as fit, CPU 128)
    compile: false                 # true or a torch.compile mode: compile the attack step
    surrogate_beta: null           # softplus surrogate for ReLU / max-pool models
    data: {name: mnist, split: test, n_samples: 64, subset_seed: null, root: null, mirror: null, download: true}
    models:
      - {name: cnn, checkpoint: runs/cnn/model.safetensors}      # relative paths: from the config's folder
      - name: cnn-small                                          # or a recipe, trained once into DIR/models/
        model: {width: 0.25, activation: softplus, beta: 10.0, pool: avg}
        train: {subset: 2048, method: natural, epochs: 1}        # + any other train() option
    norms: [l2, linf]
    eps: {l2: [0.01, 0.1], linf: [0.001, 0.01]}                  # or one list for every norm
    attributions: [saliency, {name: integrated_gradients, n_steps: 16}]
    restarts: 2
    attacks:
      - {type: pgd, steps: 20, relative_alpha: 0.25}             # alpha = relative_alpha * eps
      - {type: pgd, objective: cosine, steps: 20}
      - {type: ifia, steps: 20, k: 78}
    bound: {method: lanczos, tol: 1.0e-4, max_iter: null, max_dense_n: 4096, sign_iters: 20}
    tolerance: {rtol: 0.01, cosine_atol: 1.0e-3}

``data.subset_seed: null`` takes the first ``n_samples`` of the split, an int a seeded random subset.
``data.root``, ``data.mirror``, ``data.download`` and ``device`` say where to read and run, not what to
compute: they are left out of the config hash (a sweep may resume elsewhere), except the device type
(CPU and CUDA draw different random streams: a CPU sweep does not resume on a GPU). ``chunk_size`` and
``compile`` enter the hash as written when set (batch sizes and compiled kernels can change the last bits;
``chunk_size: 128`` hashes apart from the default although a CPU runs it alike). On CUDA the default chunk
follows the free memory, so a resumed CUDA sweep may differ from an uninterrupted one in the last bits. A
checkpoint enters the hash by the sha256 of its weights, not by its path (``config_identity``: what is
hashed).

The package, by job: ``config`` (the file's models, ``load_config``), ``identity`` (``config_identity``,
``config_hash``), ``plan`` (``Shard``, ``plan_shards``), ``distributed`` (the process group), ``runner``
(folder, manifest, recipe models, ``run_sweep``), ``report`` (``SweepReport``, ``report``) and ``cli``.
"""

from .cli import add_subcommands, cmd_report, cmd_sweep, main
from .config import SweepConfig, SweepConfigError, load_config
from .identity import config_hash, config_identity
from .plan import Shard, plan_shards
from .report import SweepReport, report
from .runner import load_data, recipe_of, run_shard, run_sweep

__all__ = ["run_sweep", "run_shard", "load_data", "report", "load_config", "plan_shards", "config_hash",
           "config_identity", "recipe_of", "SweepConfig", "SweepConfigError", "SweepReport", "Shard",
           "add_subcommands", "cmd_sweep", "cmd_report", "main"]

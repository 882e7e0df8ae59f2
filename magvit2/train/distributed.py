"""Process-group setup: the only module that imports ``torch.distributed``.

Works unchanged on one CPU process, under ``torchrun --nproc_per_node N`` with
gloo on CPU, and with NCCL on GPUs. Model code never calls into this module;
the trainers apply DDP / FSDP2 from outside and hand the quantizer a reduce hook.
"""
from __future__ import annotations

import atexit
import os
import weakref
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from magvit2.config.base import ConfigError

# Imported here, before any process group exists: its functions take ``group=group.WORLD`` as a default
# argument, evaluated at import. Imported after init_process_group, those defaults would hold the default
# group for the life of the interpreter, past destroy_process_group (see cleanup).
if dist.is_available():
    from torch.distributed.nn.functional import all_reduce as _nn_all_reduce

__all__ = ["DistInfo", "init_distributed", "cleanup", "all_reduce_mean", "mean_across_ranks",
           "barrier", "wrap_model", "broadcast_object", "gather_objects", "is_sharded", "is_dtensor", "full_tensor", "model_state",
           "load_model_state", "optimizer_state", "load_optimizer_state"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise from torchrun's environment (``RANK``, ``WORLD_SIZE``, ...) or run single-process.

    ``device``: "auto" (CUDA if available else CPU), "cpu" or "cuda".
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
        # Whatever way the process ends, tear the group down while the interpreter is still alive: gloo's
        # worker threads must not outlive it (at interpreter teardown they abort the process).
        atexit.register(cleanup, wait=False)
    return DistInfo(rank, world, local, dev)


def cleanup(wait: bool = True) -> None:
    """Tear the process group down. With ``wait``, first wait for every rank, so no rank closes its
    connections while another still has a collective in flight; pass False on an error path.

    Afterwards gloo's worker threads are gone, whatever still holds the DDP or FSDP2 models: a
    group destroyed later, from a destructor that holds the GIL (a DDP reducer's) or during interpreter
    teardown, can hang or abort the process (see :func:`_release_ddp_reducers`)."""
    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        _release_ddp_reducers()
        dist.destroy_process_group()
        if _SHARDED:
            _drop_fsdp_group_references()


#: set once :func:`wrap_model` applied FSDP2 in this process
_SHARDED = False
#: the DDP wrappers :func:`wrap_model` made (weakly: a dropped wrapper needs nothing)
_DDP_WRAPPERS: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


def _release_ddp_reducers() -> None:
    """Free every DDP wrapper's reducer (and the logger that holds it) while the process group is still
    registered, so that freeing them does not destroy the group.

    A reducer holds a C++ reference to the group, and its Python wrapper is freed with the GIL held.
    If the reducer drops the group's last reference, the group's destructor joins gloo's worker
    threads under the GIL; a worker that must first drop a finished collective's tensors needs the
    GIL too, and the process hangs at exit. Freed here, the reducers leave the group to
    ``destroy_process_group``, which destroys it through its Python object without the GIL.
    A wrapper is unusable afterwards, as any DDP model is once its group is gone.
    """
    for ddp in list(_DDP_WRAPPERS):
        for name in ("logger", "reducer"):
            if name in ddp.__dict__:
                delattr(ddp, name)
        ddp.__dict__.pop("process_group", None)
    _DDP_WRAPPERS.clear()


def _drop_fsdp_group_references() -> None:
    """Let the destroyed process group really go, now.

    FSDP2's mesh infos and device meshes keep references to the group, so ``destroy_process_group`` leaves
    it (and gloo's worker threads) alive until interpreter teardown. A worker thread that then drops the
    last reference to a finished collective's tensors needs the GIL, is made to exit by the finalising
    interpreter, unwinds through a ``noexcept`` destructor and aborts the process ("terminate called
    without an active exception"). Without those references the group is destroyed here: its destructor
    (run without the GIL) waits for the workers and joins them.
    """
    import gc

    from torch.distributed.device_mesh import DeviceMesh

    try:
        from torch.distributed.fsdp._fully_shard._fsdp_common import FSDPMeshInfo
    except ImportError:  # another torch layout: nothing known to drop
        FSDPMeshInfo = None
    for obj in gc.get_objects():
        if isinstance(obj, DeviceMesh):
            registry = getattr(obj, "_pg_registry", None)
            if isinstance(registry, dict):
                registry.clear()
        elif FSDPMeshInfo is not None and isinstance(obj, FSDPMeshInfo):
            for name in ("shard_process_group", "replicate_process_group", "reduce_scatter_process_group"):
                if getattr(obj, name, None) is not None:
                    setattr(obj, name, None)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Differentiable elementwise mean over processes (identity when single-process).

    This is the quantizer's ``reduce_hook``: the codebook entropy then is that of
    the global batch, and gradients flow back to every rank's tokens.
    """
    if not _active():
        return x
    return _nn_all_reduce(x, op=dist.ReduceOp.SUM) / dist.get_world_size()


@torch.no_grad()
def mean_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """Non-differentiable mean of a tensor over ranks, for logging."""
    if not _active():
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / dist.get_world_size()


def barrier() -> None:
    if _active():
        dist.barrier()


def broadcast_object(obj: object) -> object:
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` in rank order (a collective; ``[obj]`` when single-process)."""
    if not _active():
        return [obj]
    box: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(box, obj)
    return box


#: module classes that FSDP2 shards as their own unit (the rest is sharded with the root)
SHARD_UNITS = ("ResBlock", "Block")


def wrap_model(model: nn.Module, info: DistInfo, strategy: str = "ddp") -> nn.Module:
    """Apply data parallelism from outside the model: "ddp", "fsdp" (FSDP2) or "none"."""
    if not info.distributed or strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [info.device.index] if info.device.type == "cuda" else None
        wrapper = DDP(model, device_ids=ids)
        _DDP_WRAPPERS.add(wrapper)
        return wrapper
    if strategy == "fsdp":  # in place: the parameters become DTensors, so build optimizers afterwards
        from torch.distributed.fsdp import fully_shard

        global _SHARDED
        _SHARDED = True
        for m in model.modules():
            if m.__class__.__name__ in SHARD_UNITS and m is not model:
                fully_shard(m)
        fully_shard(model)
        return model
    raise ConfigError(f"unknown parallel strategy {strategy!r}; expected 'ddp', 'fsdp' or 'none'")


# ----- FSDP2-aware state: full (unsharded) tensors whatever the strategy -----------------------------------
def is_sharded(module: nn.Module) -> bool:
    """True when ``module`` was wrapped by FSDP2's ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def is_dtensor(t: torch.Tensor) -> bool:
    """True for a DTensor (e.g. an FSDP2-sharded parameter)."""
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: a DTensor (FSDP2 shard) is gathered from every rank (a collective); others pass through."""
    return t.full_tensor() if is_dtensor(t) else t


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def model_state(module: nn.Module) -> dict:
    """``state_dict`` with full tensors. Under FSDP2 it is a collective (call it on every rank) and only
    rank 0 receives the tensors (other ranks get an empty dict): what rank 0 saves loads anywhere."""
    if not is_sharded(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_options(cpu_offload=True))


def load_model_state(module: nn.Module, state: dict) -> None:
    """Load a full ``state_dict`` (as :func:`model_state` returns) into a plain or FSDP2 module."""
    if not is_sharded(module):
        module.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(module, state, options=_options())


def optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state with full tensors (a collective under FSDP2, like :func:`model_state`)."""
    if not is_sharded(module):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer, options=_options(cpu_offload=True))


def load_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    if not is_sharded(module):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, state, options=_options())

"""Collectives across processes: MPI through mpi4py, NCCL through CuPy for GPU buffers.

:func:`communicator` returns the :class:`Communicator` of the processes an MPI launcher
(``mpiexec``, ``srun``) started, or of this process alone. Its :meth:`Communicator.allreduce_`
sums an array of any backend over every process, in place where the buffer allows:

- host arrays (NumPy, PyTorch on CPU, array-api-strict) are reduced by MPI directly on their
  memory (zero-copy NumPy views through DLPack);
- device arrays (CuPy, PyTorch on CUDA) by NCCL when CuPy has it (one communicator per process,
  its GPU picked from the node-local rank), else through the host with a warning.

``mlp`` never names mpi4py: this module is the only one that imports it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy

from .errors import BackendError

#: What to install for ``--distributed``.
MPI_HINT = 'pip install ".[mpi]"'

#: Environment variables in which MPI launchers publish the number of processes they started
#: (MPICH/Intel MPI/Slurm PMI, Open MPI, MVAPICH, Slurm steps, MPICH's node-local count).
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                           "SLURM_STEP_NUM_TASKS", "MPI_LOCALNRANKS")

_OPS = ("sum", "max", "min")


def launcher_size(environ: dict[str, str] | None = None) -> int:
    """The number of processes an MPI launcher says it started (1 when there is none)."""
    environ = os.environ if environ is None else environ
    sizes = [1]
    for name in LAUNCHER_SIZE_VARIABLES:
        try:
            sizes.append(int(environ.get(name, "1")))
        except ValueError:
            continue
    return max(sizes)


class Request:
    """A started non-blocking reduction; :meth:`wait` finishes it."""

    def __init__(self, request: Any = None) -> None:
        self._request = request

    def wait(self) -> None:
        if self._request is not None:
            self._request.Wait()
            self._request = None


class Communicator:
    """The processes of one job (``size`` of them, this one is ``rank``).

    Attributes:
        rank, size: this process's index and the number of processes.
        local_rank, local_size: index among, and number of, the processes on this machine.
    """

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._nccl: Any = None
        self._staging_warned = False

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    # --- arrays of any backend -----------------------------------------------------------

    def allreduce_(self, x: Any) -> Any:
        """Sum the 1-D contiguous array ``x`` over every process; returns the sum, which is
        ``x`` itself wherever the buffer can be written in place (host memory, NCCL)."""
        host = _host_view(x)
        if host is not None:
            self._comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
            return x
        return self._device_allreduce(x)

    def iallreduce_(self, x: Any) -> Request:
        """Start summing ``x`` in place (host buffers; device buffers are summed at once);
        the sum is there after :meth:`Request.wait`."""
        host = _host_view(x)
        if host is None:
            self._device_allreduce(x)
            return Request()
        return Request(self._comm.Iallreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM))

    # --- small host vectors: metrics, flags, checksums -----------------------------------

    def reduce_host(self, values: Any, op: str = "sum") -> numpy.ndarray:
        """Elementwise ``op`` (``sum``, ``max`` or ``min``) of a small float64 vector over
        every process."""
        if op not in _OPS:
            raise ValueError(f"unknown reduction {op!r}: choose one of {', '.join(_OPS)}")
        buf = numpy.array(values, dtype=numpy.float64, copy=True).reshape(-1)
        mpi_op = {"sum": self._mpi.SUM, "max": self._mpi.MAX, "min": self._mpi.MIN}[op]
        self._comm.Allreduce(self._mpi.IN_PLACE, buf, op=mpi_op)
        return buf

    def gather_host(self, values: Any) -> numpy.ndarray:
        """Every process's int64 vector ``values (k,)``, as rows of a ``(size, k)`` array."""
        buf = numpy.array(values, dtype=numpy.int64).reshape(-1)
        out = numpy.empty((self.size, buf.size), dtype=numpy.int64)
        self._comm.Allgather(buf, out)
        return out

    def abort(self, code: int = 1) -> None:
        """End every process of the job now, with exit status ``code``."""
        self._comm.Abort(code)

    # --- device buffers ------------------------------------------------------------------

    def _device_allreduce(self, x: Any) -> Any:
        nccl = self._nccl_comm()
        if nccl is not None:
            return nccl(x)
        if not self._staging_warned:
            warnings.warn("no NCCL for this device's arrays: gradients are summed through host "
                          "memory (slower); install CuPy with NCCL for device-side reduction",
                          RuntimeWarning, stacklevel=3)
            self._staging_warned = True
        host = numpy.ascontiguousarray(_to_host(x))
        self._comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        x[...] = _like(x, host)
        return x

    def _nccl_comm(self) -> Any:
        """A function summing a CUDA array in place with NCCL, or ``None`` without NCCL."""
        if self._nccl is None:
            self._nccl = False
            try:
                import cupy
                from cupy.cuda import nccl
            except ImportError:
                return None
            uid = numpy.zeros(128, dtype=numpy.int8)  # NCCL_UNIQUE_ID_BYTES
            if self.rank == 0:
                uid[:] = numpy.array(nccl.get_unique_id(), dtype=numpy.int8)
            self._comm.Bcast(uid, root=0)
            comm = nccl.NcclCommunicator(self.size, tuple(int(v) for v in uid), self.rank)
            types = {numpy.dtype("float32"): nccl.NCCL_FLOAT32,
                     numpy.dtype("float64"): nccl.NCCL_FLOAT64}

            def reduce(x: Any) -> Any:
                buf = cupy.from_dlpack(x)
                comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, types[buf.dtype],
                               nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)
                return x

            self._nccl = reduce
        return self._nccl or None


def _host_view(x: Any) -> numpy.ndarray | None:
    """A writable NumPy view of host array ``x``'s memory, or ``None`` (device memory, or a
    library that hands out read-only views)."""
    if isinstance(x, numpy.ndarray):
        return x if x.flags.writeable and x.flags.c_contiguous else None
    device = getattr(x, "__dlpack_device__", None)
    if device is None or device()[0] != 1:  # 1: kDLCPU
        return None
    try:
        view = numpy.from_dlpack(x)
    except (BufferError, TypeError, RuntimeError):
        return None
    return view if view.flags.writeable and view.flags.c_contiguous else None


def _to_host(x: Any) -> numpy.ndarray:
    """A host copy of device array ``x`` (CuPy, PyTorch on CUDA)."""
    if hasattr(x, "get"):
        return x.get()
    return x.detach().cpu().numpy()


def _like(x: Any, host: numpy.ndarray) -> Any:
    """``host`` as an array of ``x``'s library on ``x``'s device."""
    from array_api_compat import array_namespace, device

    return array_namespace(x).asarray(host, device=device(x))


def communicator() -> Communicator:
    """The communicator of every process the launcher started (one, without a launcher).

    Raises:
        BackendError: mpi4py is not installed.
    """
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise BackendError(f"--distributed needs mpi4py, which is not installed ({exc}); "
                           f"install it with: {MPI_HINT}") from None
    return Communicator(MPI.COMM_WORLD)

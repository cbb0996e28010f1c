"""The slice of Ray that trackstream uses, declared: the ``ray`` module (``RayAPI``), references to the results
of remote calls (``Ref``) and the handles of trackstream's two actors (``FileWorkerHandle``,
``CameraActorHandle``). ``ray_env.import_ray`` hands the module out as a ``RayAPI``; everything else in
``cluster/`` is checked against these declarations instead of Ray's untyped dynamic handles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Mapping, Optional, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from pipelines.cluster.outcome import CameraStatus, Outcome
    from pipelines.engine.stats import StatsSnapshot

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
H_co = TypeVar("H_co", covariant=True)


class Ref(Generic[R_co]):
    """A Ray object reference: the future result (of type ``R_co``) of a remote call. Only declared: Ray makes
    them (``ray.ObjectRef``); trackstream passes them back to ``RayAPI.get`` / ``wait`` and keys dicts by them."""


class RemoteMethod(Protocol[R_co]):
    """A method of an actor handle: ``handle.method.remote(*args)`` starts the call."""

    def remote(self, *args: object) -> Ref[R_co]: ...


class FileWorkerHandle(Protocol):
    """A ``FileWorker`` actor."""

    @property
    def process(self) -> RemoteMethod["Outcome"]: ...

    @property
    def progress(self) -> RemoteMethod[list["StatsSnapshot"]]: ...

    @property
    def stop(self) -> RemoteMethod[None]: ...


class CameraActorHandle(Protocol):
    """A ``CameraActor`` actor."""

    @property
    def status(self) -> RemoteMethod[list["CameraStatus"]]: ...

    @property
    def result(self) -> RemoteMethod[Optional["Outcome"]]: ...

    @property
    def stop(self) -> RemoteMethod["Outcome"]: ...


class FileWorkerLike(Protocol):
    """What ``actors.FileWorker`` is (so that ``RayAPI.remote`` knows which handle it makes)."""

    def process(self, source_id: str, max_frames: Optional[int] = None) -> "Outcome": ...


class CameraActorLike(Protocol):
    """What ``actors.CameraActor`` is."""

    def status(self) -> list["CameraStatus"]: ...


class ActorClass(Protocol[H_co]):
    """``ray.remote(cls)``: ``options(...)`` sets Ray's actor options, ``remote(*args)`` starts one."""

    def options(self, **options: object) -> "ActorClass[H_co]": ...

    def remote(self, *args: object) -> H_co: ...


class RayUtil(Protocol):
    def list_named_actors(self) -> list[str]: ...


class RayExceptions(Protocol):
    @property
    def ActorDiedError(self) -> type[Exception]: ...  # noqa: N802 - Ray's name


class RuntimeContext(Protocol):
    @property
    def was_current_actor_reconstructed(self) -> bool: ...

    def get_node_id(self) -> str: ...


class RayAPI(Protocol):
    """What trackstream calls of the ``ray`` module."""

    @property
    def util(self) -> RayUtil: ...

    @property
    def exceptions(self) -> RayExceptions: ...

    def is_initialized(self) -> bool: ...

    def init(self, **options: object) -> object: ...

    def shutdown(self) -> None: ...

    def cluster_resources(self) -> Mapping[str, float]: ...

    def nodes(self) -> list[Mapping[str, object]]: ...

    def get_runtime_context(self) -> RuntimeContext: ...

    @overload
    def remote(self, cls: type[FileWorkerLike]) -> ActorClass[FileWorkerHandle]: ...

    @overload
    def remote(self, cls: type[CameraActorLike]) -> ActorClass[CameraActorHandle]: ...

    def get(self, ref: Ref[R], *, timeout: Optional[float] = None) -> R: ...

    def wait(self, refs: list[Ref[R]], *, num_returns: int,
             timeout: Optional[float]) -> tuple[list[Ref[R]], list[Ref[R]]]: ...

    def kill(self, actor: object, *, no_restart: bool) -> None: ...

    def get_actor(self, name: str) -> CameraActorHandle:
        """A named actor (trackstream names only its camera actors)."""
        ...


__all__ = ["ActorClass", "CameraActorHandle", "FileWorkerHandle", "RayAPI", "Ref", "RemoteMethod"]

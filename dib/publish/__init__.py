"""Publishing finished images: ``dib push`` and ``dib pull`` (docs/publish.md).

``image`` reads a built image and what its build wrote beside it, ``layout``
the two shapes it takes in a registry (an OCI artifact, a KubeVirt
containerDisk), ``transfer`` moves it with the OCI client of ``dib.cache.oci``.
"""
from __future__ import annotations

from dib.publish.transfer import Pulled, Pushed, describe, pull, push

__all__ = ["Pulled", "Pushed", "describe", "pull", "push"]

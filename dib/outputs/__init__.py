"""Output plugins (stevedore group ``dib.outputs``) and checksums."""
__all__ = ["GROUP", "Output", "OutputContext", "checksums", "needs_disk", "registry",
           "validate_types", "produce_all"]
from dib.outputs.base import (GROUP, Output, OutputContext, checksums,  # noqa: F401
                              needs_disk, registry, validate_types)


def produce_all(outputs, ctx):
    """Run each output in order (raw last, see validate_types); return all paths."""
    paths = []
    for output in outputs:
        paths.extend(output.produce(ctx))
    return paths

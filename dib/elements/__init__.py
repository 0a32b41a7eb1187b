"""Elements: discovery, the model of one element, and dependency resolution."""
from dib.elements.discovery import (ElementIndex, discover, element_paths, find_elements,
                                    shipped_elements_dir, shipped_hooks_dir)
from dib.elements.model import Element, HookFile
from dib.elements.phases import HOOK_PHASE_NAMES
from dib.elements.resolve import Resolution, resolve, with_build_defaults

__all__ = ["ElementIndex", "discover", "element_paths", "find_elements",
           "shipped_elements_dir", "shipped_hooks_dir", "HOOK_PHASE_NAMES", "Element",
           "HookFile", "Resolution", "resolve", "with_build_defaults"]

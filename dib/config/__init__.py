"""Settings: declared once in ``settings.py``; parsers, help and docs derive from it."""
from dib.config.settings import SETTINGS, Setting, by_name
from dib.config.build import BuildConfig, host_arch, load_build_config

__all__ = ["SETTINGS", "Setting", "by_name", "BuildConfig", "host_arch", "load_build_config"]

"""dib: a disk image build toolkit that runs diskimage-builder elements."""

__version__ = "0.1.0"

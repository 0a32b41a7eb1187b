export DIB_MODPROBE_BLACKLIST="floppy pcspkr"

export DIB_RELEASE=bookworm

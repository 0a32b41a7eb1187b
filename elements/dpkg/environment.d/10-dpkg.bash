# Directory of extra apt keys copied into the image before apt first runs.
export DIB_ADD_APT_KEYS=${DIB_ADD_APT_KEYS:-""}
export DIB_DISABLE_APT_CLEANUP=${DIB_DISABLE_APT_CLEANUP:-0}

# Defaults for motd-banner; a build overrides them by exporting the variables.
export DIB_MOTD_BANNER_TEXT=${DIB_MOTD_BANNER_TEXT:-Built with dib}
export DIB_MOTD_BANNER_FIGLET=${DIB_MOTD_BANNER_FIGLET:-0}

export DIB_MOTD_BANNER_TEXT="motd-banner test"
export DIB_MOTD_BANNER_FIGLET=1

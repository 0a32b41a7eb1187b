export DIB_CLOUD_INIT_DATASOURCES="NoCloud, ConfigDrive"
export DIB_DEV_USER_USERNAME=dibdev
export DIB_DEV_USER_PWDLESS_SUDO=yes
export DIB_DEV_USER_GROUPS=adm
# The key beside this file, by the case's own directory (a path that stays
# the same from build to build, so the phase cache still works).
declare -A _cloud_image_dirs=()
eval "_cloud_image_dirs=($(get_image_element_array))"
export DIB_DEV_USER_AUTHORIZED_KEYS="${_cloud_image_dirs[cloud-image]}/dibdev.pub"
unset _cloud_image_dirs

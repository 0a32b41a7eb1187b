# Ubuntu images built by DIB ask cloud-init for the EC2 metadata service
# unless told otherwise.
export DIB_CLOUD_INIT_DATASOURCES=${DIB_CLOUD_INIT_DATASOURCES:-Ec2}

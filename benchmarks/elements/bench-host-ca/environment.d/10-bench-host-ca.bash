# Inside the chroot the hooks directory is /tmp/in_target.d. Every variable
# through which pip (and requests, which prefers REQUESTS_CA_BUNDLE and
# CURL_CA_BUNDLE over pip's own setting) finds CAs must name the bundle.
if [ -d /tmp/in_target.d ]; then
    for variable in PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE SSL_CERT_FILE; do
        export "$variable=/tmp/in_target.d/bench-host-ca.crt"
    done
fi

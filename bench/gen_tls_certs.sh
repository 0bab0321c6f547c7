#!/usr/bin/env bash
# Throw-away TLS files for the benchmarks (bench/run.sh, bench/callgrind.sh):
#
#   bench/gen_tls_certs.sh DIR
#
# writes DIR/ca.pem (a self-signed ECDSA P-256 CA) and DIR/leaf.pem +
# DIR/leaf.key (PKCS#8) for `localhost` and 127.0.0.1, signed by that CA,
# valid 2 days, with `openssl`. Exit status non-zero (and openssl's message
# on stderr) if openssl is missing or fails.
set -euo pipefail
d=${1:?usage: gen_tls_certs.sh DIR}
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
rm -rf "$d"
mkdir -p "$d"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key"
openssl req -x509 -new -key "$d/ca.key" -subj "/CN=asyncproto bench CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$d/ca.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/leaf.key"
openssl req -new -key "$d/leaf.key" -subj "/CN=localhost" -out "$d/leaf.csr"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$d/leaf.ext"
openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/leaf.ext" -out "$d/leaf.pem" 2>&1 | grep -v '^Certificate request self-signature ok$\|^subject=' >&2 || true
test -s "$d/leaf.pem"

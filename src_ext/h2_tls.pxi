# TLS by OpenSSL: a server context per certificate pair (ALPN h2, TLS 1.2+,
# client certificates verified against the trusted CA when asked), and the
# common name of a connection's verified client certificate.

# h2 first (gRPC); http/1.1 for /health and /metrics, as etcd's Go server offers.
cdef const unsigned char *ALPN_PROTOCOLS = b"\x02h2\x08http/1.1"


cdef int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *inp, unsigned int inlen, void *arg) noexcept nogil:
    if SSL_select_next_proto(<unsigned char **>out, outlen, ALPN_PROTOCOLS, 12, inp, inlen) \
            != OPENSSL_NPN_NEGOTIATED:
        return SSL_TLSEXT_ERR_ALERT_FATAL  # as Go's TLS server: no protocol in common
    return SSL_TLSEXT_ERR_OK


cdef str ssl_error_text():
    cdef char buf[256]
    cdef unsigned long code = ERR_get_error()
    ERR_clear_error()
    if code == 0:
        return "unknown OpenSSL error"
    ERR_error_string_n(code, buf, sizeof(buf))
    return buf.decode("utf-8", "replace")


cdef class TLSContext:
    """A server TLS context from PEM files (etcd's --cert-file, --key-file,
    --trusted-ca-file, --client-cert-auth). Raises ValueError with OpenSSL's
    reason when a file cannot be used."""

    cdef SSL_CTX *ctx

    def __cinit__(self, str cert_file, str key_file, str ca_file="", bint client_cert_auth=False):
        self.ctx = SSL_CTX_new(TLS_server_method())
        if self.ctx == NULL:
            raise MemoryError(ssl_error_text())
        SSL_CTX_set_min_proto_version(self.ctx, TLS1_2_VERSION)
        SSL_CTX_set_options(self.ctx, SSL_OP_NO_RENEGOTIATION)
        SSL_CTX_set_mode(self.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS)
        SSL_CTX_set_alpn_select_cb(self.ctx, select_h2, NULL)
        if SSL_CTX_use_certificate_chain_file(self.ctx, cert_file.encode()) != 1:
            raise ValueError(f"cannot use certificate {cert_file}: {ssl_error_text()}")
        if SSL_CTX_use_PrivateKey_file(self.ctx, key_file.encode(), SSL_FILETYPE_PEM) != 1:
            raise ValueError(f"cannot use key {key_file}: {ssl_error_text()}")
        if SSL_CTX_check_private_key(self.ctx) != 1:
            raise ValueError(f"key {key_file} does not match {cert_file}: {ssl_error_text()}")
        if ca_file:
            if SSL_CTX_load_verify_locations(self.ctx, ca_file.encode(), NULL) != 1:
                raise ValueError(f"cannot use trusted CA {ca_file}: {ssl_error_text()}")
        if client_cert_auth:
            SSL_CTX_set_verify(self.ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL)
        elif ca_file:
            SSL_CTX_set_verify(self.ctx, SSL_VERIFY_PEER, NULL)  # verify one if offered

    def __dealloc__(self):
        if self.ctx != NULL:
            SSL_CTX_free(self.ctx)


cdef char *peer_common_name(SSL *ssl) noexcept nogil:
    """The CN of the verified client certificate (malloc'd), or NULL."""
    cdef X509 *cert = SSL_get1_peer_certificate(ssl)
    cdef X509_NAME *name
    cdef int index
    cdef ASN1_STRING *data
    cdef char *out = NULL
    if cert == NULL:
        return NULL
    name = X509_get_subject_name(cert)
    index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
    if index >= 0:
        data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index))
        out = dup_bytes(<const char *>ASN1_STRING_get0_data(data), ASN1_STRING_length(data))
    X509_free(cert)
    return out

# The part of OpenSSL 3's C API (openssl/ssl.h, x509.h) the native server uses.


cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_CTX:
        pass
    ctypedef struct SSL:
        pass
    ctypedef struct SSL_METHOD:
        pass
    ctypedef struct X509:
        pass
    ctypedef struct X509_NAME:
        pass
    ctypedef struct X509_NAME_ENTRY:
        pass
    ctypedef struct ASN1_STRING:
        pass
    ctypedef struct X509_STORE_CTX:
        pass

    enum:
        SSL_ERROR_NONE
        SSL_ERROR_SSL
        SSL_ERROR_WANT_READ
        SSL_ERROR_WANT_WRITE
        SSL_ERROR_SYSCALL
        SSL_ERROR_ZERO_RETURN
        SSL_VERIFY_NONE
        SSL_VERIFY_PEER
        SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        SSL_FILETYPE_PEM
        SSL_MODE_ENABLE_PARTIAL_WRITE
        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
        SSL_MODE_RELEASE_BUFFERS
        SSL_OP_NO_RENEGOTIATION
        SSL_TLSEXT_ERR_OK
        SSL_TLSEXT_ERR_ALERT_FATAL
        SSL_TLSEXT_ERR_NOACK
        TLS1_2_VERSION
        OPENSSL_NPN_NEGOTIATED
        NID_commonName

    ctypedef int (*alpn_select_cb)(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                   const unsigned char *inp, unsigned int inlen,
                                   void *arg) noexcept

    const SSL_METHOD *TLS_server_method()
    SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
    void SSL_CTX_free(SSL_CTX *ctx)
    int SSL_CTX_up_ref(SSL_CTX *ctx)
    int SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version)
    int SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *file)
    int SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *file, int type)
    int SSL_CTX_check_private_key(const SSL_CTX *ctx)
    int SSL_CTX_load_verify_locations(SSL_CTX *ctx, const char *CAfile, const char *CApath)
    void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, void *callback)
    long SSL_CTX_set_mode(SSL_CTX *ctx, long mode)
    unsigned long SSL_CTX_set_options(SSL_CTX *ctx, unsigned long options)
    void SSL_CTX_set_alpn_select_cb(SSL_CTX *ctx, alpn_select_cb cb, void *arg)
    int SSL_select_next_proto(unsigned char **out, unsigned char *outlen,
                              const unsigned char *server, unsigned int server_len,
                              const unsigned char *client, unsigned int client_len)

    SSL *SSL_new(SSL_CTX *ctx)
    void SSL_free(SSL *ssl)
    int SSL_set_fd(SSL *ssl, int fd)
    void SSL_set_accept_state(SSL *ssl)
    int SSL_do_handshake(SSL *ssl)
    int SSL_read(SSL *ssl, void *buf, int num)
    int SSL_write(SSL *ssl, const void *buf, int num)
    int SSL_get_error(const SSL *ssl, int ret)
    X509 *SSL_get1_peer_certificate(const SSL *ssl)
    void X509_free(X509 *x)
    X509_NAME *X509_get_subject_name(const X509 *x)
    int X509_NAME_get_index_by_NID(X509_NAME *name, int nid, int lastpos)
    X509_NAME_ENTRY *X509_NAME_get_entry(const X509_NAME *name, int loc)
    ASN1_STRING *X509_NAME_ENTRY_get_data(const X509_NAME_ENTRY *ne)
    const unsigned char *ASN1_STRING_get0_data(const ASN1_STRING *x)
    int ASN1_STRING_length(const ASN1_STRING *x)


cdef extern from "openssl/err.h" nogil:
    unsigned long ERR_get_error()
    void ERR_clear_error()
    void ERR_error_string_n(unsigned long e, char *buf, size_t len)

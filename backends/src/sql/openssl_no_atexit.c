/*
 * libpq does its TLS with OpenSSL, and OpenSSL frees its global state in an atexit handler.
 * When the process exits, other threads can still be inside OpenSSL: the connection pool opens
 * connections in threads of its own (one may be in its TLS handshake as a one-shot command
 * such as `authstat query` returns), and a blocking task may be in a query. They then use
 * freed memory: `authstat query` on a PostgreSQL server with TLS (libpq's default
 * sslmode=prefer) crashed with SIGSEGV in about one run in three.
 *
 * OPENSSL_INIT_NO_ATEXIT, given before OpenSSL is first used, leaves the state to the
 * operating system, as OpenSSL's documentation advises for such programs. OpenSSL is found
 * at run time (libpq loads it): nothing is linked, and a build whose client libraries do not
 * use OpenSSL is unaffected.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHSTAT_OPENSSL_INIT_NO_ATEXIT 0x00080000L /* openssl/crypto.h, OpenSSL 1.1.1 and 3 */

__attribute__((constructor)) static void authstat_openssl_no_atexit(void)
{
    int (*init)(uint64_t, const void *) =
        (int (*)(uint64_t, const void *))dlsym(RTLD_DEFAULT, "OPENSSL_init_crypto");
    if (init != NULL)
        init(AUTHSTAT_OPENSSL_INIT_NO_ATEXIT, NULL);
}

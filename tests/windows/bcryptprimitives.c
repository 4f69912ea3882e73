/*
 * bcryptprimitives.c: a stand-in for Windows' bcryptprimitives.dll, for the
 * wine prefix the Windows tests run in (scripts/install-windows.sh builds it
 * into that prefix's system32). A test fixture only: it is never packaged.
 *
 * Why: Rust's standard library (1.78+) on Windows imports ProcessPrng from
 * bcryptprimitives.dll, which Windows 10 and later have and wine 8 does not;
 * without it every Rust DLL fails to load under wine (status c0000135).
 *
 * ProcessPrng fills the buffer with random bytes and, as documented, always
 * returns TRUE. Wine's bcrypt.dll supplies the bytes.
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    /* BCryptGenRandom takes a ULONG length: fill larger buffers in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x40000000u ? 0x40000000u : (ULONG)length;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, piece, BCRYPT_USE_SYSTEM_PREFERRED_RNG))) {
            /* Windows' ProcessPrng cannot fail; a caller that cannot go on without
             * random bytes would abort anyway, so make the failure loud. */
            RaiseFailFastException(NULL, NULL, 0);
        }
        data += piece;
        length -= piece;
    }
    return TRUE;
}

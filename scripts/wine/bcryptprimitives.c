/* Test-only stand-in for Windows' bcryptprimitives.dll, for scripts/wine/run.
 *
 * Rust's standard library (since 1.78) takes its random bytes from
 * ProcessPrng in bcryptprimitives.dll, which every supported Windows has but
 * Wine 8.0 (Debian 12's) does not: without this file the executable does not
 * load at all. It forwards to RtlGenRandom (advapi32's SystemFunction036),
 * which Wine does have. run copies it beside the executable only when the
 * Wine prefix lacks the real one; it is never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length; ProcessPrng a SIZE_T. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

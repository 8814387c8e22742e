/* Test harness for scripts/wine/run: starts a console program on this
 * launcher's console, delivers console control events to it on request,
 * and reports its exit code.
 *
 *   launch.exe CONTROL STATUS LOG PROGRAM
 *
 * PROGRAM runs with its standard output and error in LOG. Every line
 * appended to CONTROL is one request, carried out at once:
 *   ctrl-c    Ctrl-C, through GenerateConsoleCtrlEvent to the whole console
 *             (what the console does when a user presses it)
 *   break     Ctrl-Break,                  each through a thread started
 *   close     the console's close event,   in PROGRAM at CtrlRoutine
 *   shutdown  CTRL_SHUTDOWN_EVENT,         (kernelbase), the event its argument
 *   kill      TerminateProcess, exit code 99 (to clean up; not a stop under test)
 * A thread at CtrlRoutine is how Windows itself delivers a console event:
 * no API generates the close or shutdown events, and Wine 8.0's
 * GenerateConsoleCtrlEvent fails for Ctrl-Break (error 6, invalid handle).
 *
 * STATUS gets one line per step, written whole so that a reader polling it
 * never sees half a line: "started PID", "sent REQUEST" or
 * "failed REQUEST: error N", and last "exit CODE" with PROGRAM's exit code
 * (GetExitCodeProcess), which is also this launcher's. */
#include <windows.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static FILE *status;

static void report(const char *format, ...)
{
    char line[256];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line - 1, format, args);
    va_end(args);
    if (n < 0 || n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, status);
    fflush(status);
}

/* The launcher shares the console, so it gets Ctrl-C too: ignore it. */
static BOOL WINAPI ignore(DWORD event)
{
    (void)event;
    return TRUE;
}

static void deliver(HANDLE process, FARPROC ctrl_routine, const char *request)
{
    DWORD event;
    if (!strcmp(request, "ctrl-c")) {
        if (GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0))
            report("sent %s", request);
        else
            report("failed %s: error %lu", request, GetLastError());
        return;
    } else if (!strcmp(request, "break")) {
        event = CTRL_BREAK_EVENT;
    } else if (!strcmp(request, "close")) {
        event = CTRL_CLOSE_EVENT;
    } else if (!strcmp(request, "shutdown")) {
        event = CTRL_SHUTDOWN_EVENT;
    } else if (!strcmp(request, "kill")) {
        if (TerminateProcess(process, 99))
            report("sent %s", request);
        else
            report("failed %s: error %lu", request, GetLastError());
        return;
    } else {
        report("failed %s: unknown request", request);
        return;
    }
    if (!ctrl_routine) {
        report("failed %s: no CtrlRoutine in kernelbase or kernel32", request);
        return;
    }
    HANDLE thread = CreateRemoteThread(process, NULL, 0, (LPTHREAD_START_ROUTINE)(void *)ctrl_routine,
                                       (LPVOID)(ULONG_PTR)event, 0, NULL);
    if (thread) {
        CloseHandle(thread);
        report("sent %s", request);
    } else {
        report("failed %s: error %lu", request, GetLastError());
    }
}

/* Carries out the complete lines appended to CONTROL since *done bytes. */
static void poll_control(const char *control, long *done, HANDLE process, FARPROC ctrl_routine)
{
    FILE *file = fopen(control, "rb");
    if (!file)
        return;
    char buffer[4096];
    size_t got = 0;
    if (fseek(file, *done, SEEK_SET) == 0)
        got = fread(buffer, 1, sizeof buffer - 1, file);
    fclose(file);
    buffer[got] = '\0';
    char *line = buffer, *end;
    while ((end = strchr(line, '\n')) != NULL) {
        *done += (long)(end - line) + 1;
        *end = '\0';
        if (end > line && end[-1] == '\r')
            end[-1] = '\0';
        if (*line)
            deliver(process, ctrl_routine, line);
        line = end + 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: launch.exe CONTROL STATUS LOG PROGRAM\n");
        return 2;
    }
    const char *control = argv[1], *log = argv[3], *program = argv[4];
    status = fopen(argv[2], "ab");
    if (!status) {
        fprintf(stderr, "launch.exe: cannot open %s\n", argv[2]);
        return 2;
    }

    SECURITY_ATTRIBUTES inheritable = {sizeof inheritable, NULL, TRUE};
    HANDLE output = CreateFileA(log, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &inheritable,
                                CREATE_ALWAYS, 0, NULL);
    if (output == INVALID_HANDLE_VALUE) {
        report("failed start: cannot create %s: error %lu", log, GetLastError());
        return 2;
    }
    STARTUPINFOA startup;
    ZeroMemory(&startup, sizeof startup);
    startup.cb = sizeof startup;
    startup.dwFlags = STARTF_USESTDHANDLES;
    startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    startup.hStdOutput = output;
    startup.hStdError = output;
    char command_line[MAX_PATH + 3];
    snprintf(command_line, sizeof command_line, "\"%s\"", program);
    PROCESS_INFORMATION child;
    /* Same console, same process group: what a console event reaches. */
    if (!CreateProcessA(NULL, command_line, NULL, NULL, TRUE, 0, NULL, NULL, &startup, &child)) {
        report("failed start: CreateProcess: error %lu", GetLastError());
        return 2;
    }
    CloseHandle(output);
    SetConsoleCtrlHandler(ignore, TRUE);
    report("started %lu", child.dwProcessId);

    FARPROC ctrl_routine = GetProcAddress(GetModuleHandleA("kernelbase.dll"), "CtrlRoutine");
    if (!ctrl_routine)
        ctrl_routine = GetProcAddress(GetModuleHandleA("kernel32.dll"), "CtrlRoutine");

    long done = 0;
    while (WaitForSingleObject(child.hProcess, 20) == WAIT_TIMEOUT)
        poll_control(control, &done, child.hProcess, ctrl_routine);
    DWORD code = 0;
    GetExitCodeProcess(child.hProcess, &code);
    report("exit %lu", code);
    return (int)code;
}

using System.Diagnostics;
using System.Globalization;

namespace ChatScale.Testing;

/// <summary>Sends POSIX signals to a child process (<c>kill -STOP</c> to freeze it, <c>-CONT</c> to resume it).</summary>
public static class ProcessSignal
{
    /// <summary>Sends <paramref name="signal"/> (a name such as <c>STOP</c>) to <paramref name="pid"/>; returns kill's exit code.</summary>
    public static int Send(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        return kill.ExitCode;
    }
}

using System.Text;

namespace Pinhole.Drivers.Cameras;

/// <summary>Splits a command line into argv the way a POSIX shell does for words and quotes,
/// without expansions (no variables, globs, pipes or redirections: the command runs without a shell).</summary>
internal static class CommandLine
{
    /// <summary>
    /// Splits <paramref name="commandLine"/>: blanks separate words; <c>'…'</c> is literal; inside
    /// <c>"…"</c> a backslash escapes only <c>\ " $ `</c>; outside quotes a backslash escapes any
    /// character. Throws <see cref="CameraConfigurationException"/> for unbalanced quotes or an empty command.
    /// </summary>
    public static IReadOnlyList<string> Split(string commandLine)
    {
        ArgumentNullException.ThrowIfNull(commandLine);
        var args = new List<string>();
        var current = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < commandLine.Length; i++)
        {
            var c = commandLine[i];
            switch (c)
            {
                case ' ' or '\t' or '\n' or '\r':
                    if (inWord) { args.Add(current.ToString()); current.Clear(); inWord = false; }
                    break;
                case '\'':
                    {
                        inWord = true;
                        var end = commandLine.IndexOf('\'', i + 1);
                        if (end < 0) throw new CameraConfigurationException("exec: command has an unterminated single quote");
                        current.Append(commandLine, i + 1, end - i - 1);
                        i = end;
                        break;
                    }
                case '"':
                    {
                        inWord = true;
                        i++;
                        while (true)
                        {
                            if (i >= commandLine.Length) throw new CameraConfigurationException("exec: command has an unterminated double quote");
                            var d = commandLine[i];
                            if (d == '"') break;
                            if (d == '\\' && i + 1 < commandLine.Length && commandLine[i + 1] is '\\' or '"' or '$' or '`')
                            {
                                current.Append(commandLine[i + 1]);
                                i += 2;
                                continue;
                            }
                            current.Append(d);
                            i++;
                        }
                        break;
                    }
                case '\\':
                    if (i + 1 >= commandLine.Length) throw new CameraConfigurationException("exec: command ends with a lone backslash");
                    inWord = true;
                    current.Append(commandLine[++i]);
                    break;
                default:
                    inWord = true;
                    current.Append(c);
                    break;
            }
        }
        if (inWord) args.Add(current.ToString());
        if (args.Count == 0) throw new CameraConfigurationException("exec: command is empty");
        return args;
    }
}

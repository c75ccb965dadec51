namespace Pinhole.Transport.Mqtt;

/// <summary>The connection to the broker failed or is not usable; base of the client's I/O exceptions.</summary>
public class MqttCommunicationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MqttCommunicationException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MqttCommunicationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the cause.</summary>
    public MqttCommunicationException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The broker did not answer within the client's timeout (measured with the injected <see cref="TimeProvider"/>).</summary>
public sealed class MqttCommunicationTimedOutException : MqttCommunicationException
{
    /// <summary>Creates the exception.</summary>
    public MqttCommunicationTimedOutException()
        : base("the broker did not answer in time")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MqttCommunicationTimedOutException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the cause.</summary>
    public MqttCommunicationTimedOutException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An operation needs a connection and the client has none.</summary>
public sealed class MqttClientNotConnectedException : MqttCommunicationException
{
    /// <summary>Creates the exception.</summary>
    public MqttClientNotConnectedException()
        : base("the MQTT client is not connected")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MqttClientNotConnectedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the cause.</summary>
    public MqttClientNotConnectedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The connection closed while an operation waited for the broker's answer.</summary>
public sealed class MqttClientDisconnectedException : MqttCommunicationException
{
    /// <summary>Creates the exception.</summary>
    public MqttClientDisconnectedException()
        : base("the connection to the broker closed before the answer arrived")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MqttClientDisconnectedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the cause.</summary>
    public MqttClientDisconnectedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The broker refused the connection; <see cref="Result"/> holds its CONNACK.</summary>
public sealed class MqttConnectingFailedException : MqttCommunicationException
{
    /// <summary>Creates the exception from the broker's answer.</summary>
    public MqttConnectingFailedException(string message, MqttClientConnectResult? result)
        : base(message)
    {
        Result = result;
    }

    /// <summary>Creates the exception.</summary>
    public MqttConnectingFailedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MqttConnectingFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the cause.</summary>
    public MqttConnectingFailedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The broker's CONNACK, when it sent one.</summary>
    public MqttClientConnectResult? Result { get; }

    /// <summary>The reason code of the refusal (UnspecifiedError when the broker sent none).</summary>
    public MqttClientConnectResultCode ResultCode => Result?.ResultCode ?? MqttClientConnectResultCode.UnspecifiedError;
}

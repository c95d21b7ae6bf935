"""The PLC handshake servers (OPC UA, Modbus TCP): the optional extra ``edge-ad[plc]``."""

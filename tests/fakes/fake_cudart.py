"""A stand-in for cuda-python's runtime module (`cuda.bindings.runtime`) without a GPU: device
memory is host memory, copies are memmoves, streams are synchronous. Every function has the real
module's name and parameters (checked in tests/unit/test_trt_fake.py against the installed
cuda-python), returns the real (error, value...) tuples, and counts what is still allocated so
tests can see that the backend frees everything."""
from __future__ import annotations

import ctypes
from enum import IntEnum


class cudaError_t(IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidValue = 1


class cudaMemcpyKind(IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaStream_t:
    _next = 1

    def __init__(self):
        self._handle = cudaStream_t._next
        cudaStream_t._next += 1

    def __int__(self):
        return self._handle


live_device: dict[int, ctypes.Array] = {}
live_host: dict[int, ctypes.Array] = {}
live_streams: set[int] = set()


def _alloc(table, size):
    buffer = (ctypes.c_uint8 * max(1, int(size)))()
    address = ctypes.addressof(buffer)
    table[address] = buffer
    return address


def cudaMalloc(size):
    return cudaError_t.cudaSuccess, _alloc(live_device, size)


def cudaMallocHost(size):
    return cudaError_t.cudaSuccess, _alloc(live_host, size)


def cudaFree(devPtr):
    return (cudaError_t.cudaSuccess,) if live_device.pop(int(devPtr), None) is not None \
        else (cudaError_t.cudaErrorInvalidValue,)


def cudaFreeHost(ptr):
    return (cudaError_t.cudaSuccess,) if live_host.pop(int(ptr), None) is not None \
        else (cudaError_t.cudaErrorInvalidValue,)


def cudaMemcpyAsync(dst, src, count, kind, stream):
    if int(stream) not in live_streams:
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(int(dst), int(src), int(count))
    return (cudaError_t.cudaSuccess,)


def cudaStreamCreate():
    stream = cudaStream_t()
    live_streams.add(int(stream))
    return cudaError_t.cudaSuccess, stream


def cudaStreamSynchronize(stream):
    return (cudaError_t.cudaSuccess,)


def cudaStreamDestroy(stream):
    live_streams.discard(int(stream))
    return (cudaError_t.cudaSuccess,)

// The Python module qtorch._C. It holds no functions: importing it runs the TORCH_LIBRARY_IMPL registrations of the
// CUDA kernels (after qtorch/ops has defined the schemas).
#include <Python.h>

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "CUDA kernels of the qtorch:: ops", -1,
                                          nullptr};
  return PyModule_Create(&module_def);
}

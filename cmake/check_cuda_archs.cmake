# check_cuda_archs.cmake — CTest script: proves the CUDA kernels were compiled to machine code
# for every configured architecture. Each embedded cubin records its ptxas options
# ("-arch sm_XX"), so the static kernel library must contain that string once per architecture.
#   cmake -DLIB=<libhgpt_kernels.a> -DARCHS="86;90" -P check_cuda_archs.cmake
file(STRINGS "${LIB}" found REGEX "-arch sm_[0-9]+a?")
foreach(arch ${ARCHS})
  string(REGEX REPLACE "-real|-virtual" "" arch "${arch}")
  string(FIND "${found}" "-arch sm_${arch} " hit)
  if(hit EQUAL -1)
    message(FATAL_ERROR "no sm_${arch} machine code in ${LIB} (found: ${found})")
  endif()
  message(STATUS "sm_${arch}: machine code present")
endforeach()

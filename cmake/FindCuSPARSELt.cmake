# Finds cuSPARSELt: CUSPARSELT_ROOT (variable or environment), then the project's local prefix
# .deps/cusparselt (unpacked from the pinned PyPI wheel by scripts/setup.sh), then the system.
# Defines CuSPARSELt::CuSPARSELt.
set(_ss_hints ${CUSPARSELT_ROOT} $ENV{CUSPARSELT_ROOT} ${CMAKE_SOURCE_DIR}/.deps/cusparselt)
find_path(CUSPARSELT_INCLUDE_DIR cusparseLt.h HINTS ${_ss_hints} PATH_SUFFIXES include)
find_library(CUSPARSELT_LIBRARY NAMES cusparseLt libcusparseLt.so.0 HINTS ${_ss_hints}
             PATH_SUFFIXES lib lib64)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CuSPARSELt REQUIRED_VARS CUSPARSELT_INCLUDE_DIR CUSPARSELT_LIBRARY)
if(CuSPARSELt_FOUND AND NOT TARGET CuSPARSELt::CuSPARSELt)
  add_library(CuSPARSELt::CuSPARSELt SHARED IMPORTED)
  set_target_properties(CuSPARSELt::CuSPARSELt PROPERTIES
    IMPORTED_LOCATION ${CUSPARSELT_LIBRARY}
    IMPORTED_NO_SONAME OFF
    INTERFACE_INCLUDE_DIRECTORIES ${CUSPARSELT_INCLUDE_DIR})
endif()

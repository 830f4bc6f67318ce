# heygemd: config (yaml-cpp), jobs (store, spool, scheduler), executor (pipeline + residency),
# server (Boost.Asio on a Unix socket), app (the Daemon wiring) and the thin main.
# Included from daemon/CMakeLists.txt after the libraries it builds on.
set(HEYGEMD_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(heygemd_config STATIC ${HEYGEMD_DIR}/config/config.cpp)
heygem_target_defaults(heygemd_config)
# Only the residency header's plain structs are used (no torch code); its includes need torch's.
target_include_directories(heygemd_config SYSTEM PUBLIC ${TORCH_INCLUDE_DIRS})
target_link_libraries(heygemd_config PUBLIC heygem_common PRIVATE heygem_cluster_wire ${HEYGEM_YAML_TARGET})

add_library(heygemd_jobs STATIC
  ${HEYGEMD_DIR}/jobs/job.cpp ${HEYGEMD_DIR}/jobs/store.cpp ${HEYGEMD_DIR}/jobs/spool.cpp
  ${HEYGEMD_DIR}/jobs/scheduler.cpp)
heygem_target_defaults(heygemd_jobs)
target_link_libraries(heygemd_jobs PUBLIC heygem_common heygem_system nlohmann_json::nlohmann_json spdlog::spdlog Threads::Threads)

add_library(heygemd_server STATIC
  ${HEYGEMD_DIR}/server/listener.cpp ${HEYGEMD_DIR}/server/dispatcher.cpp ${HEYGEMD_DIR}/server/server.cpp)
heygem_target_defaults(heygemd_server)
target_link_libraries(heygemd_server PUBLIC heygemd_jobs heygem_common Boost::boost spdlog::spdlog Threads::Threads)

# The executor (and the pipeline warm-up) needs the pipeline (and so torch, FFmpeg) and the residency registry.
add_library(heygemd_executor STATIC ${HEYGEMD_DIR}/jobs/item_executor.cpp ${HEYGEMD_DIR}/jobs/pipeline_warmup.cpp)
heygem_target_defaults(heygemd_executor)
target_link_libraries(heygemd_executor PUBLIC heygemd_jobs heygem_pipeline heygem_residency heygem_system)

add_library(heygemd_app STATIC ${HEYGEMD_DIR}/app/daemon.cpp ${HEYGEMD_DIR}/app/build_info.cpp)
heygem_target_defaults(heygemd_app)
target_link_libraries(heygemd_app PUBLIC heygemd_config heygemd_server heygemd_executor heygemd_cluster heygem_system
                      PRIVATE ${HEYGEM_YAML_TARGET})

add_executable(heygemd ${HEYGEMD_DIR}/app/main.cpp)
heygem_target_defaults(heygemd)
target_link_libraries(heygemd PRIVATE heygemd_app CLI11::CLI11)
install(TARGETS heygemd RUNTIME DESTINATION sbin)

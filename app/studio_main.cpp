// lit-studio: the desktop GUI. Opens the window, hands every frame to StudioUI (app/studio_ui.cpp) and the
// heavy work to the Generator thread (app/state/generator.cpp). --autorun generates once with the given
// settings; --screenshot saves the window as PNG and exits (after the autorun finished), for the GUI tests.
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <stb_image_write.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "app/studio_ui.h"
#include "kernels/runtime/cpu_allocator.h"
#include "kernels/runtime/cuda_support.h"

namespace {

struct WindowOptions {
  std::string screenshot;  // save the window here and exit
  int frames = 5;          // frames rendered before the screenshot (after --autorun finished)
  int width = 1280;
  int height = 800;
};

bool save_screenshot(const std::string& path, int width, int height) {
  std::vector<unsigned char> pixels(static_cast<size_t>(width) * height * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, width, height, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
  stbi_flip_vertically_on_write(1);  // OpenGL rows run bottom-up
  return stbi_write_png(path.c_str(), width, height, 4, pixels.data(), width * 4) != 0;
}

void on_drop(GLFWwindow* window, int count, const char** paths) {
  auto* ui = static_cast<lit::studio::StudioUI*>(glfwGetWindowUserPointer(window));
  std::vector<std::string> files(paths, paths + count);
  if (ui) ui->drop(files);
}

}  // namespace

int main(int argc, char** argv) {
  WindowOptions win;
  lit::studio::StartOptions start;
  CLI::App cli{"lit-studio: generate images with LiT / DiT models"};
  cli.add_option("--model", start.model,
                 "checkpoint to load (default: the built-in text model with an example prompt; with --class or "
                 "--unconditional: the built-in Fashion-MNIST LiT)");
  cli.add_option("--vae", start.vae, "diffusers VAE folder, for latent models");
  cli.add_option("--text-encoder", start.text_encoder,
                 "T5 folder, for text-to-image models (PixArt-Σ, LiT-T2I; the built-in text model has its own)");
  cli.add_option("--prompt", start.prompt, "prompt to start with (text-to-image models)");
  cli.add_option("--negative-prompt", start.negative_prompt, "negative prompt to start with");
  cli.add_option("--class", start.class_arg, "class id or name to start with");
  cli.add_flag("--unconditional", start.unconditional, "start unconditional");
  cli.add_option("--sampler", start.sampler, "ddpm, ddim or dpm++2m");
  cli.add_option("--steps", start.steps, "sampling steps")->check(CLI::Range(1, 1000));
  cli.add_option("--cfg-scale", start.cfg_scale, "guidance scale")->check(CLI::NonNegativeNumber);
  cli.add_option("--seed", start.seed, "seed of the first image");
  cli.add_option("-n,--count", start.count, "images per Generate")->check(CLI::Range(1, 1000));
  cli.add_option("--device", start.device, "cpu or cuda");
  cli.add_option("--dtype", start.dtype, "fp32, bf16 or fp16");
  cli.add_option_function<std::string>(
         "--attention", [&](const std::string& n) { start.attention = lit::kernels::parse_attention_impl(n); },
         "linear attention: auto, composed or reference")
      ->check(CLI::IsMember(lit::kernels::attention_impl_names()));
  cli.add_option_function<std::string>(
         "--precision-path", [&](const std::string& n) { start.precision = lit::kernels::parse_precision_path(n); },
         "bf16/fp16 on CUDA: fused or plain")
      ->check(CLI::IsMember(lit::kernels::precision_path_names()));
  cli.add_option_function<std::string>(
         "--clamp-x0", [&](const std::string& n) { start.clamp_x0 = lit::parse_clamp_x0(n); },
         "clamp x_0 predictions: auto, on or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cli.add_option("--image-width", start.image_width, "text-to-image: image width in pixels (0: the model's own)")
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--image-height", start.image_height, "text-to-image: image height in pixels (0: the model's own)")
      ->check(CLI::NonNegativeNumber);
  cli.add_option_function<std::string>(
         "--guidance-convention",
         [&](const std::string& n) { start.guidance_convention = lit::parse_guidance_convention(n); },
         "text-to-image: T5's null caption as PixArt's scripts (official) or diffusers make it")
      ->check(CLI::IsMember({"official", "diffusers"}));
  cli.add_flag("--autorun", start.autorun, "generate once as soon as the model is loaded");
  cli.add_option("--screenshot", win.screenshot, "save the window to this PNG and exit (after --autorun finished)");
  cli.add_option("--frames", win.frames, "frames to render before the screenshot")->check(CLI::PositiveNumber);
  cli.add_option("--width", win.width, "window width")->check(CLI::PositiveNumber);
  cli.add_option("--height", win.height, "window height")->check(CLI::PositiveNumber);
  CLI11_PARSE(cli, argc, argv);

  glfwSetErrorCallback(
      [](int code, const char* msg) { std::fprintf(stderr, "lit-studio: GLFW error %d: %s\n", code, msg); });
  if (!glfwInit()) {
    std::fprintf(stderr, "lit-studio: error: cannot open a window (no display? set DISPLAY or run under xvfb-run)\n");
    return 1;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  GLFWwindow* window = glfwCreateWindow(win.width, win.height, "lit-studio", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "lit-studio: error: cannot create an OpenGL 3.3 window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330");
  lit::kernels::tune_cpu_allocator();  // exact float32: the pipeline's execution option (pipeline/session.h)

  int rc = 0;
  {
    lit::studio::Generator generator;
    lit::studio::StudioUI ui(generator, start);
    glfwSetWindowUserPointer(window, &ui);
    glfwSetDropCallback(window, on_drop);
    int frames_after = 0;
    while (!glfwWindowShouldClose(window)) {
      // Wait for input, waking up for the worker's news: about 30 frames a second while it works (without
      // vsync, e.g. under Xvfb, a spinning UI thread would take a core from the sampler), 4 when idle.
      glfwWaitEventsTimeout(generator.busy() || !win.screenshot.empty() ? 1.0 / 30 : 0.25);
      ImGui_ImplOpenGL3_NewFrame();
      ImGui_ImplGlfw_NewFrame();
      ImGui::NewFrame();
      ui.frame();
      ImGui::Render();
      int w = 0, h = 0;
      glfwGetFramebufferSize(window, &w, &h);
      glViewport(0, 0, w, h);
      glClearColor(0.10f, 0.11f, 0.13f, 1.0f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
      const bool ready = start.autorun ? ui.script_finished() : !generator.busy();
      if (!win.screenshot.empty() && ready && ++frames_after >= win.frames) {
        if (!save_screenshot(win.screenshot, w, h)) {
          std::fprintf(stderr, "lit-studio: error: cannot write %s\n", win.screenshot.c_str());
          rc = 1;
        }
        break;
      }
      glfwSwapBuffers(window);
    }
    if (start.autorun) {
      if (!ui.script_finished() || ui.script_failed()) {
        std::fprintf(stderr, "lit-studio: error: %s\n", ui.status().c_str());
        rc = 1;
      } else {
        std::fprintf(stderr, "lit-studio: %s\n", ui.status().c_str());
      }
    }
    glfwSetWindowUserPointer(window, nullptr);
    generator.cancel();
  }  // the UI releases its textures while the context still exists
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
